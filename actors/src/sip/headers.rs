//! Header storage and the typed header values (Via, Contact, CSeq, Method).
//!
//! [`Headers`] keeps every header in arrival order under its canonical long name (compact
//! forms such as `i:` and odd casing such as `MaX-fOrWaRdS` are normalised on insertion);
//! unknown headers keep their name and value verbatim. Values are stored as text and parsed
//! by the typed accessors; the message parser has already checked the ones it validates.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use compact_str::CompactString;

use super::uri::{
    is_token, parse_host, parse_port, strip_brackets, Cursor, NameAddr, Params, SyntaxError,
};

type Result<T> = std::result::Result<T, SyntaxError>;

/// Canonical spellings of the headers this switch knows. Lookup is case-insensitive.
const CANONICAL: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// Compact forms (RFC 3261 §7.3.3 and the IANA SIP header registry).
const COMPACT: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Headers whose comma-separated values are split into one entry each on parse, so that
/// `vias()`, `contacts()` and the routes see one value per entry (RFC 3261 §7.3.1).
const SPLIT_ON_COMMA: &[&str] = &[
    "Via",
    "Contact",
    "Route",
    "Record-Route",
    "Path",
    "Service-Route",
];

/// The canonical name of a header: the long form for compact names, the registry spelling
/// for known names, the name as given otherwise.
pub fn canonical_name(name: &str) -> &str {
    known_name(name).unwrap_or(name)
}

/// The canonical spelling of a header this switch knows (compact forms included).
fn known_name(name: &str) -> Option<&'static str> {
    if let [b] = name.as_bytes() {
        let lower = b.to_ascii_lowercase();
        return COMPACT
            .iter()
            .find(|(c, _)| *c == lower)
            .map(|(_, long)| *long);
    }
    // Every message looks names up many times: only names of the same length are compared,
    // the canonical spelling (what nearly every peer sends) with a plain memcmp first.
    let bucket = by_length().get(name.len())?;
    bucket
        .iter()
        .find(|known| **known == name)
        .or_else(|| bucket.iter().find(|known| known.eq_ignore_ascii_case(name)))
        .copied()
}

/// `CANONICAL` grouped by name length.
fn by_length() -> &'static [Vec<&'static str>] {
    static BUCKETS: std::sync::OnceLock<Vec<Vec<&'static str>>> = std::sync::OnceLock::new();
    BUCKETS.get_or_init(|| {
        let longest = CANONICAL.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut buckets = vec![Vec::new(); longest + 1];
        for name in CANONICAL {
            if let Some(b) = buckets.get_mut(name.len()) {
                b.push(*name);
            }
        }
        buckets
    })
}

/// A header name as stored: the static canonical spelling of a known header (no
/// allocation), or an unknown header's name as received.
fn stored_name(name: &str) -> Cow<'static, str> {
    match known_name(name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_string()),
    }
}

pub(crate) fn splits_on_comma(canonical: &str) -> bool {
    SPLIT_ON_COMMA.contains(&canonical)
}

/// Splits a header value at commas that are outside quoted strings and `<…>`.
/// Returns `None` when an element is empty (`a,,b`, RFC 4475 §3.1.2.1).
pub(crate) fn split_list(value: &str) -> Option<Vec<&str>> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let (mut in_quote, mut in_angle) = (false, false);
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_quote && !in_angle => {
                out.push(value.get(start..i)?.trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value.get(start..)?.trim_matches([' ', '\t']));
    if out.iter().any(|v| v.is_empty()) {
        return None;
    }
    Some(out)
}

/// All headers of a message, in order, with canonical names.
#[derive(Clone, Default)]
pub struct Headers {
    /// Values inline when short (CSeq, Max-Forwards, Content-Type, most Call-IDs).
    entries: Vec<(Cow<'static, str>, CompactString)>,
    /// From, To and the top Via parsed on first use: every layer asks for them (parse
    /// checks, transaction keys, dialog matching, routing) and each parse allocated.
    /// Cleared by every change to the entries. Boxed, and only once asked for: messages
    /// are moved between layers and most built ones are never asked.
    parsed: OnceCell<Box<Parsed>>,
}

#[derive(Clone, Default)]
struct Parsed {
    from: OnceCell<Option<NameAddr>>,
    to: OnceCell<Option<NameAddr>>,
    top_via: OnceCell<Option<Via>>,
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Headers")
            .field("entries", &self.entries)
            .finish()
    }
}

impl Headers {
    pub fn new() -> Self {
        Headers::default()
    }

    /// Appends a header (the name is canonicalised).
    pub fn add(&mut self, name: &str, value: impl Into<CompactString>) {
        self.parsed = OnceCell::new();
        self.entries.push((stored_name(name), value.into()));
    }

    /// Inserts a header before all others of the same name (e.g. a new top Via), or at the
    /// end if there is none.
    pub fn add_first(&mut self, name: &str, value: impl Into<CompactString>) {
        self.parsed = OnceCell::new();
        let name = stored_name(name);
        let at = self.position(&name).unwrap_or(self.entries.len());
        self.entries.insert(at, (name, value.into()));
    }

    /// Replaces every `name` header with one value at the position of the first (or appends).
    pub fn set(&mut self, name: &str, value: impl Into<CompactString>) {
        self.parsed = OnceCell::new();
        let name = canonical_name(name);
        match self.position(name) {
            Some(at) => {
                if let Some(slot) = self.entries.get_mut(at) {
                    slot.1 = value.into();
                }
                let mut seen = false;
                self.entries.retain(|(n, _)| {
                    if !n.eq_ignore_ascii_case(name) {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.add(name, value),
        }
    }

    /// Replaces the value of the first `name` header, keeping the others; false if absent.
    pub fn replace_first(&mut self, name: &str, value: impl Into<CompactString>) -> bool {
        self.parsed = OnceCell::new();
        let name = canonical_name(name);
        match self.position(name).and_then(|at| self.entries.get_mut(at)) {
            Some(slot) => {
                slot.1 = value.into();
                true
            }
            None => false,
        }
    }

    /// Removes every `name` header; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        self.parsed = OnceCell::new();
        let name = canonical_name(name);
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before - self.entries.len()
    }

    /// The first value of `name` (compact or long, any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        // Known names are stored in their canonical spelling, and an unknown name can never
        // equal a known one: a plain comparison is enough for them.
        let name: Cow<'static, str> = stored_name(name);
        let known = matches!(name, Cow::Borrowed(_));
        self.entries
            .iter()
            .filter(move |(n, _)| {
                if known {
                    *n == name
                } else {
                    n.eq_ignore_ascii_case(&name)
                }
            })
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// All `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, canonical: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(canonical))
    }

    // ---- typed accessors -------------------------------------------------------------

    fn parsed(&self) -> &Parsed {
        self.parsed.get_or_init(Box::default)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID")
    }

    /// The From header parsed (once; see [`Headers`]).
    pub fn from(&self) -> Option<&NameAddr> {
        self.parsed()
            .from
            .get_or_init(|| self.get("From").and_then(|v| NameAddr::parse(v).ok()))
            .as_ref()
    }

    /// The To header parsed (once).
    pub fn to(&self) -> Option<&NameAddr> {
        self.parsed()
            .to
            .get_or_init(|| self.get("To").and_then(|v| NameAddr::parse(v).ok()))
            .as_ref()
    }

    pub fn cseq(&self) -> Option<(u32, Method)> {
        self.get("CSeq").and_then(|v| parse_cseq(v).ok())
    }

    /// Every Via, top first. Values that do not parse are skipped (a received message has
    /// had all of them checked).
    pub fn vias(&self) -> Vec<Via> {
        self.get_all("Via")
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }

    /// The top Via parsed (once).
    pub fn top_via(&self) -> Option<&Via> {
        self.parsed()
            .top_via
            .get_or_init(|| self.get("Via").and_then(|v| Via::parse(v).ok()))
            .as_ref()
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.get_all("Contact")
            .filter_map(|v| Contact::parse(v).ok())
            .collect()
    }

    pub fn routes(&self) -> Vec<NameAddr> {
        self.name_addrs("Route")
    }

    pub fn record_routes(&self) -> Vec<NameAddr> {
        self.name_addrs("Record-Route")
    }

    fn name_addrs(&self, name: &str) -> Vec<NameAddr> {
        self.get_all(name)
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }

    pub fn max_forwards(&self) -> Option<u8> {
        self.get("Max-Forwards")
            .and_then(|v| parse_decimal(v, u64::from(u8::MAX)).ok())
            .and_then(|v| u8::try_from(v).ok())
    }

    pub fn expires(&self) -> Option<u32> {
        self.get("Expires")
            .and_then(|v| parse_delta_seconds(v).ok())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    pub fn content_length(&self) -> Option<usize> {
        self.get("Content-Length")
            .and_then(|v| parse_decimal(v, u64::from(u32::MAX)).ok())
            .and_then(|v| usize::try_from(v).ok())
    }

    /// The raw Authorization value (digest parameters such as a hex `nc` stay text; the
    /// digest module parses them).
    pub fn authorization(&self) -> Option<&str> {
        self.get("Authorization")
    }

    pub fn proxy_authorization(&self) -> Option<&str> {
        self.get("Proxy-Authorization")
    }

    /// Every WWW-Authenticate challenge, raw.
    pub fn www_authenticate(&self) -> Vec<&str> {
        self.get_all("WWW-Authenticate").collect()
    }

    pub fn proxy_authenticate(&self) -> Vec<&str> {
        self.get_all("Proxy-Authenticate").collect()
    }
}

/// Parses a non-negative decimal (leading zeros allowed) no larger than `max`.
pub(crate) fn parse_decimal(s: &str, max: u64) -> Result<u64> {
    let s = s.trim_matches([' ', '\t']);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SyntaxError("number"));
    }
    let digits = s.trim_start_matches('0');
    // More than 20 significant digits cannot fit u64; checking the length first keeps a
    // 100-digit Expires (RFC 4475 §3.1.2.4) from being a problem.
    if digits.len() > 20 {
        return Err(SyntaxError("number (too large)"));
    }
    let v: u64 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| SyntaxError("number (too large)"))?
    };
    if v > max {
        return Err(SyntaxError("number (out of range)"));
    }
    Ok(v)
}

/// delta-seconds: 0..=2^32-1 (RFC 3261 §20.19).
pub(crate) fn parse_delta_seconds(s: &str) -> Result<u32> {
    parse_decimal(s, u64::from(u32::MAX)).map(|v| v as u32)
}

/// `CSeq: 1*DIGIT LWS Method`, the number limited to 2^32-1 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(s: &str) -> Result<(u32, Method)> {
    let mut c = Cursor::new(s);
    c.skip_ws();
    let num = c.take_while(|b| b.is_ascii_digit());
    let num = parse_decimal(num, u64::from(u32::MAX)).map_err(|_| SyntaxError("CSeq"))?;
    let before = c.rest().len();
    c.skip_ws();
    if c.rest().len() == before {
        return Err(SyntaxError("CSeq"));
    }
    let method = c.rest().trim_end_matches([' ', '\t']);
    if !is_token(method) {
        return Err(SyntaxError("CSeq"));
    }
    Ok((num as u32, Method::from_token(method)))
}

/// SIP method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is an unknown method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Unknown(String),
}

impl Method {
    /// Maps a token to a method; the caller has checked it is a token.
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Unknown(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Method> {
        if is_token(s) {
            Ok(Method::from_token(s))
        } else {
            Err(SyntaxError("method"))
        }
    }
}

/// Via transport. Unknown transports are kept (RFC 4475 §3.1.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    Other(String),
}

impl Transport {
    pub fn parse(s: &str) -> Transport {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Sctp,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
        .unwrap_or_else(|| Transport::Other(s.to_string()))
    }

    /// Reliable transports need no SIP-level retransmission (RFC 3261 §17.1.1.2).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    /// The port used when a Via or URI names none (RFC 3261 §18.2.2, §19.1.2).
    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §8.1.1.7: branches starting with this cookie are RFC 3261 branches.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value. `branch`, `received` and `rport` are taken out of `params`, which holds the
/// other parameters in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Via {
    pub transport: Transport,
    // Inline strings: an address and a branch fit in 24 bytes, so neither parsing a Via nor
    // keying a transaction on it allocates.
    pub host: CompactString,
    pub port: Option<u16>,
    pub branch: Option<CompactString>,
    pub received: Option<CompactString>,
    /// RFC 3581: `Some(None)` is a bare `;rport` (a request asking for it), `Some(Some(p))`
    /// the port stamped by the server.
    pub rport: Option<Option<u16>>,
    pub params: Params,
}

impl Via {
    pub fn new(transport: Transport, host: &str, port: Option<u16>, branch: &str) -> Via {
        Via {
            transport,
            host: CompactString::from(host),
            port,
            branch: Some(CompactString::from(branch)),
            received: None,
            rport: None,
            params: Params::new(),
        }
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> CompactString {
        match self.port {
            Some(p) => compact_str::format_compact!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }

    /// True for an RFC 3261 branch: the magic cookie followed by at least one character
    /// (a bare `z9hG4bK` is treated as RFC 2543, RFC 4475 §3.2.1).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// `SIP / 2.0 / transport LWS host [: port] *(; param)`, LWS allowed around `/`, `:`, `;`
    /// and `=` (RFC 4475 §3.1.1.1). Only SIP/2.0 is accepted.
    pub fn parse(s: &str) -> Result<Via> {
        let mut c = Cursor::new(s);
        let (transport, version_ok) = parse_sent_protocol(&mut c)?;
        if !version_ok {
            return Err(SyntaxError("Via (protocol version)"));
        }
        let (host, port) = parse_sent_by(&mut c)?;
        let params = Params::parse_header_params(c.rest()).map_err(|_| SyntaxError("Via"))?;
        Self::from_parts(transport, host, port, params)
    }

    /// A best-effort parse used only to address a 400/505 to a malformed request: any
    /// protocol version, empty or broken parameters skipped.
    pub(crate) fn parse_lenient(s: &str) -> Option<Via> {
        let mut c = Cursor::new(s);
        let (transport, _) = parse_sent_protocol(&mut c).ok()?;
        let (host, port) = parse_sent_by(&mut c).ok()?;
        let mut params = Params::new();
        for p in c.rest().split([';', ',']) {
            if let Ok(one) = Params::parse_header_params(&format!(";{}", p.trim())) {
                for (n, v) in one.iter() {
                    params.set(n, v);
                }
            }
        }
        Self::from_parts(transport, host, port, params).ok()
    }

    fn from_parts(
        transport: Transport,
        host: &str,
        port: Option<u16>,
        mut params: Params,
    ) -> Result<Via> {
        let branch = params.get("branch").map(CompactString::from);
        let received = params.get("received").map(CompactString::from);
        let rport = match params.get_raw("rport") {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(parse_port(p).map_err(|_| SyntaxError("Via rport"))?)),
        };
        for p in ["branch", "received", "rport"] {
            params.remove(p);
        }
        Ok(Via {
            transport,
            host: CompactString::from(host),
            port,
            branch,
            received,
            rport,
            params,
        })
    }
}

/// `SIP SWS "/" SWS 2.0 SWS "/" SWS transport`; returns the transport and whether the
/// protocol is SIP/2.0.
fn parse_sent_protocol(c: &mut Cursor<'_>) -> Result<(Transport, bool)> {
    c.skip_ws();
    let name = c.take_while(super::uri::is_token_byte);
    c.skip_ws();
    if !c.eat(b'/') {
        return Err(SyntaxError("Via"));
    }
    c.skip_ws();
    let version = c.take_while(super::uri::is_token_byte);
    c.skip_ws();
    if !c.eat(b'/') {
        return Err(SyntaxError("Via"));
    }
    c.skip_ws();
    let transport = c.take_while(super::uri::is_token_byte);
    if transport.is_empty() {
        return Err(SyntaxError("Via transport"));
    }
    let ok = name.eq_ignore_ascii_case("SIP") && version == "2.0";
    Ok((Transport::parse(transport), ok))
}

fn parse_sent_by<'a>(c: &mut Cursor<'a>) -> Result<(&'a str, Option<u16>)> {
    c.skip_ws();
    let host = parse_host(c).map_err(|_| SyntaxError("Via sent-by"))?;
    c.skip_ws();
    let port = if c.eat(b':') {
        c.skip_ws();
        Some(
            parse_port(c.take_while(|b| b.is_ascii_digit()))
                .map_err(|_| SyntaxError("Via port"))?,
        )
    } else {
        None
    };
    Ok((host, port))
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(b) = &self.branch {
            write!(f, ";branch={b}")?;
        }
        match self.rport {
            Some(Some(p)) => write!(f, ";rport={p}")?,
            Some(None) => f.write_str(";rport")?,
            None => {}
        }
        if let Some(r) = &self.received {
            write!(f, ";received={r}")?;
        }
        write!(f, "{}", self.params)
    }
}

impl std::str::FromStr for Via {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Via> {
        Via::parse(s)
    }
}

/// One Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Contact {
    Wildcard,
    /// Boxed: a name-addr is large and `*` is nothing.
    Addr(Box<NameAddr>),
}

impl Contact {
    pub fn parse(s: &str) -> Result<Contact> {
        if s.trim_matches([' ', '\t']) == "*" {
            return Ok(Contact::Wildcard);
        }
        NameAddr::parse(s).map(|a| Contact::Addr(Box::new(a)))
    }

    pub fn addr(&self) -> Option<&NameAddr> {
        match self {
            Contact::Wildcard => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `expires` contact parameter, `None` when absent or not a valid delta-seconds.
    pub fn expires(&self) -> Option<u32> {
        self.addr()
            .and_then(|a| a.params.get("expires"))
            .and_then(|v| parse_delta_seconds(v).ok())
    }

    /// The `q` parameter, 0.0..=1.0.
    pub fn q(&self) -> Option<f32> {
        self.addr()
            .and_then(|a| a.params.get("q"))
            .and_then(|v| v.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Wildcard => f.write_str("*"),
            Contact::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Sets `received=` (RFC 3261 §18.2.1: when sent-by is not the source address) and fills an
/// empty `rport` (RFC 3581 §4: which then requires `received` as well).
pub fn stamp_via(via: &mut Via, src: SocketAddr) {
    let sent_by_ip: Option<IpAddr> = strip_brackets(&via.host).parse().ok();
    let wants_rport = via.rport == Some(None);
    if wants_rport {
        via.rport = Some(Some(src.port()));
    }
    if wants_rport || sent_by_ip != Some(src.ip()) {
        via.received = Some(compact_str::ToCompactString::to_compact_string(&src.ip()));
    }
}

/// Where to send a response over an unreliable transport (RFC 3261 §18.2.2 + RFC 3581 §4):
/// `maddr` if it is an IP literal, else the `received` address (or the sent-by host when it is
/// an IP literal, or the packet source as the last resort, since names would need DNS), at the
/// `rport` port, else the sent-by port, else the transport's default port. Over a reliable
/// transport the response goes back on the connection the request came in on instead.
pub fn response_target(via: &Via, src: SocketAddr) -> SocketAddr {
    let default_port = via.port.unwrap_or_else(|| via.transport.default_port());
    if let Some(maddr) = via
        .params
        .get("maddr")
        .and_then(|m| strip_brackets(m).parse::<IpAddr>().ok())
    {
        return SocketAddr::new(maddr, default_port);
    }
    let ip = via
        .received
        .as_deref()
        .and_then(|r| strip_brackets(r).parse::<IpAddr>().ok())
        .or_else(|| strip_brackets(&via.host).parse().ok())
        .unwrap_or(src.ip());
    let port = match via.rport {
        Some(Some(p)) => p,
        Some(None) => src.port(),
        None => default_port,
    };
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_of(h: &Headers, name: &str) -> Option<String> {
        let addr = if name == "From" { h.from() } else { h.to() };
        addr.and_then(|a| a.tag().map(str::to_string))
    }

    #[test]
    fn parsed_from_to_and_via_follow_every_change() {
        let mut h = Headers::new();
        h.add("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1");
        h.add("From", "<sip:a@example.com>;tag=1");
        h.add("To", "<sip:b@example.com>");
        // Parsed once and kept.
        assert_eq!(tag_of(&h, "From").as_deref(), Some("1"));
        assert_eq!(tag_of(&h, "To"), None);
        assert_eq!(
            h.top_via().and_then(|v| v.branch.as_deref()),
            Some("z9hG4bK1")
        );
        assert!(std::ptr::eq(h.from().unwrap(), h.from().unwrap()));

        h.set("From", "<sip:a@example.com>;tag=2");
        assert_eq!(tag_of(&h, "From").as_deref(), Some("2"), "set");
        h.replace_first("To", "<sip:b@example.com>;tag=3");
        assert_eq!(tag_of(&h, "To").as_deref(), Some("3"), "replace_first");
        h.add_first("Via", "SIP/2.0/UDP b.example.com;branch=z9hG4bK2");
        assert_eq!(
            h.top_via().and_then(|v| v.branch.as_deref()),
            Some("z9hG4bK2"),
            "add_first"
        );
        h.remove("Via");
        assert!(h.top_via().is_none(), "remove");
        h.add("Via", "SIP/2.0/TCP c.example.com;branch=z9hG4bK3");
        assert_eq!(
            h.top_via().and_then(|v| v.branch.as_deref()),
            Some("z9hG4bK3"),
            "add"
        );
        h.set("To", "not a name-addr <");
        assert!(h.to().is_none(), "an unparsable value reads as absent");

        // A clone carries the parsed values; equality ignores them.
        let copy = h.clone();
        assert_eq!(tag_of(&copy, "From").as_deref(), Some("2"));
        let mut fresh = Headers::new();
        for (name, value) in h.iter() {
            fresh.add(name, value);
        }
        assert_eq!(fresh, h);
    }

    #[test]
    fn canonical_names_are_distinct_and_found_in_any_case() {
        for (i, a) in CANONICAL.iter().enumerate() {
            assert!(CANONICAL[i + 1..]
                .iter()
                .all(|b| !a.eq_ignore_ascii_case(b)));
        }
        for name in CANONICAL {
            assert_eq!(known_name(name), Some(*name));
            assert_eq!(known_name(&name.to_ascii_lowercase()), Some(*name));
            assert_eq!(known_name(&name.to_ascii_uppercase()), Some(*name));
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("i"), "Call-ID");
        assert_eq!(canonical_name("V"), "Via");
        assert_eq!(canonical_name("MaX-fOrWaRdS"), "Max-Forwards");
        assert_eq!(canonical_name("cseq"), "CSeq");
        assert_eq!(canonical_name("X-Custom"), "X-Custom");
        assert_eq!(canonical_name("C%6Fntact"), "C%6Fntact");
    }

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let v = split_list(r#""a, b" <sip:x,y@h>;p=1 , <sip:z@h>"#).unwrap();
        assert_eq!(v, vec![r#""a, b" <sip:x,y@h>;p=1"#, "<sip:z@h>"]);
        assert!(split_list("a,,b").is_none());
        assert!(split_list("a,").is_none());
    }

    #[test]
    fn via_with_lws() {
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.branch.as_deref(), Some("z9hG4bK9ikj8"));
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;rport;received=192.0.2.1;ttl=3").unwrap();
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.params.get("ttl"), Some("3"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8::9]:5070;rport;received=192.0.2.1;ttl=3"
        );
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/7.0/UDP c.example.com").is_err());
        assert!(Via::parse_lenient("SIP/7.0/UDP c.example.com;;branch=z9hG4bKx;").is_some());
    }

    #[test]
    fn cseq_and_numbers() {
        assert_eq!(parse_cseq("0009  INVITE").unwrap(), (9, Method::Invite));
        assert_eq!(parse_cseq("4294967295 BYE").unwrap().0, u32::MAX);
        assert!(parse_cseq("4294967296 BYE").is_err());
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("8INVITE").is_err());
        assert!(parse_cseq("-1 INVITE").is_err());
        assert_eq!(parse_decimal("0068", 255).unwrap(), 68);
        assert!(parse_decimal("300", 255).is_err());
        assert!(parse_decimal(&"1".repeat(100), u64::MAX).is_err());
        assert_eq!(
            parse_decimal(&format!("{}7", "0".repeat(100)), 10).unwrap(),
            7
        );
    }

    #[test]
    fn rport_and_received() {
        let src: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let mut v = Via::parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa;rport").unwrap();
        stamp_via(&mut v, src);
        assert_eq!(v.received.as_deref(), Some("198.51.100.7"));
        assert_eq!(v.rport, Some(Some(40000)));
        assert_eq!(response_target(&v, src), src);
        // No rport: received address, sent-by port.
        let mut v = Via::parse("SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bKa").unwrap();
        stamp_via(&mut v, src);
        assert_eq!(
            response_target(&v, src),
            "198.51.100.7:5070".parse().unwrap()
        );
        // Same address, no rport: nothing stamped, default port.
        let mut v = Via::parse("SIP/2.0/TLS 198.51.100.7;branch=z9hG4bKa").unwrap();
        stamp_via(&mut v, src);
        assert_eq!(v.received, None);
        assert_eq!(
            response_target(&v, src),
            "198.51.100.7:5061".parse().unwrap()
        );
    }
}
